"""One thin module per DVC stage: parse the command line and params, call the library, write outputs."""
