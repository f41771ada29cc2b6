"""Training runs on the profile's budget (executed next to the code under test) and the trusted linear probe."""
