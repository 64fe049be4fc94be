"""Offline work of data scientists: synthetic history, datasets, fitting, evaluation, registry."""
