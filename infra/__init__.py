"""The Skyfleet Pulumi program: `__main__` composes the components from the stack config."""
