"""Recipes: one folder per recommendation model from a paper (pure PyTorch + Arrow)."""
