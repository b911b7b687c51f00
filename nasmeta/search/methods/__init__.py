"""Built-in search methods, one file each; every module here is imported by the registry on first look-up."""
