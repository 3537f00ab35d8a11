"""Safe checkpoint reading and writing (atomic, weights only), key-layout converters, export."""
