"""Whole files: render, analyze, and the heavier offline analysis."""
