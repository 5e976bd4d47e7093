"""Sources: where items come from. One module or package per protocol."""
