"""Faithful, compact re-implementations of the calibration-based structured-pruning peers
(FLAP, Wanda-sp, LLM-Pruner, ShortGPT, L2 magnitude), used only as measurement tools for
benchmarks/PEERS.md; they stay out of the zerolm_prune package."""
