"""Local sandbox: a loopback "region" for demos, drills and end-to-end tests."""
