"""One module per recipe section, each owned by the component that reads it."""
