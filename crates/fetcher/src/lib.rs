//! Fetches URIs into a container sandbox (not yet implemented: see the fetcher issue).
