"""Autograder for Problem Set 7: representation learning (autoencoder probes on STL-10, a simplified CLIP)."""
