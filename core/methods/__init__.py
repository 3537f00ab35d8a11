"""Methods assembled from core components."""
