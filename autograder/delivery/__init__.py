"""Delivery: the Gradescope upload (`zip`) and grading a folder of submissions on a TA's machine (`batch`)."""
