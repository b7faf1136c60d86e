"""cache: values by namespace and key with a time to live."""
