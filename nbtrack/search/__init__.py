"""The search grammar: filters and order-by keys parsed into a tree."""

from nbtrack.search.parser import parse_filter, parse_order_by

__all__ = ["parse_filter", "parse_order_by"]
