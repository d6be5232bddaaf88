"""Self-contained modelling code copied into saved folders (see ``modeling_zerolm``).

Files here import only torch and transformers: they must run where zerolm_prune is not installed.
"""
