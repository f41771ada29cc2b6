"""Profiles: which data, backbones, budgets and thresholds a grading run uses, and how to prepare them."""
