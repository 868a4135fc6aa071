"""The API's routers (thin: each calls one store or runtime method, which applies the rules and the audit)."""
