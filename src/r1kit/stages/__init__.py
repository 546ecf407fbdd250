"""Training and evaluation stages, each runnable alone and by the pipeline."""
