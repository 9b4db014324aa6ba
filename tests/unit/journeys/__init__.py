"""Journey document, validation and engine tests."""
