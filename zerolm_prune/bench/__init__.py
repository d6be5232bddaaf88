"""Labelled NAS benchmarks (NAS-Bench-BERT, LTS GPT-2/Transformer-XL) for judging proxies.

``nasbench_bert`` and ``lts`` turn rows into block matrices (``arch``), ``run`` scores them with
every proxy and baseline and reports Kendall tau / Spearman rho with bootstrap intervals
(``stats``); ``surrogate`` holds the small torch models the gradient baselines need.
"""
