"""MSD: a mixture of short-channel distillers for zero-shot cross-lingual NER (Ma et al., EMNLP 2022).

Read in this order:

* :mod:`nerlib.msd.model`: the multi-exit token classifier (a head on every layer from 4 to the last);
* :mod:`nerlib.msd.losses`: teacher loss, distillation loss, the multi-kernel MMD and the final student objective;
* :mod:`nerlib.msd.variants`: the ablation's variants and table rows (no torch: the command line reads them);
* :mod:`nerlib.msd.features`: first-subword labelled features, padded batches, length-grouped batch orders;
* :mod:`nerlib.msd.predict`: tags from any exit and seqeval scores;
* :mod:`nerlib.msd.train`: teacher and student training, model selection, resumable checkpoints;
* :mod:`nerlib.msd.runs`: the cache of trained teachers and students (run keys, run folders);
* :mod:`nerlib.msd.ablation`: the ablation grid and its paper-shaped table;
* :mod:`nerlib.msd.tsne`: [CLS] features across languages, t-SNE and the numbers that go with it;
* :mod:`nerlib.msd.tag`: tagging raw text (CoNLL-style words, character offsets) and scoring on any BIO dataset;
* :mod:`nerlib.msd.export`: the last exit as a standard ``AutoModelForTokenClassification`` folder with a card.

:mod:`nerlib.msd.tiny` builds tiny random encoders for tests. Submodules are imported on demand (torch is heavy).
"""
