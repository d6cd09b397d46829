"""ecomlake: the ecommerce lakehouse. See README.md for the map of modules."""
__version__ = "0.1.0"
