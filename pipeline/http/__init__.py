"""What the HTTP services share: the OpenAPI building blocks their documents are made of."""
