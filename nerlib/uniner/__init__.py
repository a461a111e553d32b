"""UniversalNER: targeted distillation from an LLM teacher for open-type NER (Zhou et al., ICLR 2024).

Using a trained student: :mod:`nerlib.uniner.extract` (entities of any types in raw text, with character
offsets), :mod:`nerlib.uniner.export` (a LoRA student merged into a plain causal LM with a model card) and
:mod:`nerlib.uniner.eval_data` (evaluation files in the official format from any BIO dataset).
"""
