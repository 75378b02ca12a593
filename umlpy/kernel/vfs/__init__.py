"""The guest VFS: the tree a sandbox sees, assembled from layers."""
