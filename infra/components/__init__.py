"""One ComponentResource per concern: hosts per cloud, the mesh, bootstrap, publication."""
