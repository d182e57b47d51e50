"""What providers share: the pooled HTTP client and retries of hosted ones, the worker pool of embedded ones."""
