"""A plugin module that fails on import, as a plugin with a missing dependency does."""

raise ImportError("vlmkit-broken needs the 'imaginary-sdk' package: pip install imaginary-sdk")
