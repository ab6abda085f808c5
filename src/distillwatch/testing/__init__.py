"""Reusable checks for extension authors: run them against your own signals."""
