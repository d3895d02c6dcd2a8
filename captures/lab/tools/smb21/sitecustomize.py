"""Imported by Python at start-up when this directory is on PYTHONPATH.

Makes Impacket's SMB client offer SMB 2.1 only.  Impacket 0.13 otherwise
negotiates SMB 3.1.1 and encrypts every SMB3 message as soon as the server
advertises encryption (Samba does), which hides the DCE/RPC carried in named
pipes from a passive analyzer that has no keys.  captures/record.sh uses it
for the "*-smb21-*" captures only; the others keep Impacket's default.
"""

try:
    from impacket import smbconnection
    from impacket.smb3structs import SMB2_DIALECT_21

    _orig_init = smbconnection.SMBConnection.__init__

    def _init(self, *args, **kwargs):
        # SMBConnection(remoteName, remoteHost, myName, sess_port, timeout, preferredDialect, ...)
        if len(args) >= 6:
            if args[5] is None:
                args = (*args[:5], SMB2_DIALECT_21, *args[6:])
        elif kwargs.get("preferredDialect") is None:
            kwargs["preferredDialect"] = SMB2_DIALECT_21
        return _orig_init(self, *args, **kwargs)

    smbconnection.SMBConnection.__init__ = _init
except Exception:  # never break interpreter start-up (e.g. impacket not installed)
    pass
