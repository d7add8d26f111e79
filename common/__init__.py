"""What several layers share: the error families and their exit codes, file writing, checksummed caches."""
