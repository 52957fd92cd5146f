"""A traced FastAPI service running one frozen dagwire graph per request (see `app`)."""
