"""Model loading shared by the model-scoring stages."""
