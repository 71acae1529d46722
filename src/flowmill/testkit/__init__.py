"""Test kit pieces re-exported by :mod:`flowmill.testing`: waiting, stub servers, DNS.

Import them from :mod:`flowmill.testing`; the modules here only keep that file small.
"""
