"""Destinations: where items go. One module or package per protocol."""
