"""Getting circuit states in: the push API's parser, scrapers of two formats, the bulk store."""
