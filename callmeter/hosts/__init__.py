"""Hosts: their rate and whether they take calls."""
