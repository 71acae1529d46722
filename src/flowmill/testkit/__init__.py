"""Test kit pieces re-exported by :mod:`flowmill.testing`: waiting, stub servers, DNS,
webhook set-up.

Import them from :mod:`flowmill.testing`; the modules here only keep that file small.
"""
