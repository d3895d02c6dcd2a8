"""dcerpc stage."""
