"""Hand-kept facts that the go-msrpc import cannot know: spec ids and titles, short names.

Spec titles are those of the Microsoft Open Specifications (as listed in go-msrpc's
``msrpc/well_known/data/well_known_endpoints.yaml`` and on learn.microsoft.com); short names
follow Wireshark/Zeek usage where one is established.
"""

# go-msrpc package directory -> (spec id, spec title)
SPEC_TITLES: dict[str, tuple[str, str]] = {
    "adtg": ("MS-ADTG", "Remote Data Services (RDS) Transport Protocol"),
    "adts": ("MS-ADTS", "Active Directory Technical Specification"),
    "bkrp": ("MS-BKRP", "BackupKey Remote Protocol"),
    "bpau": (
        "MS-BPAU",
        "Background Intelligent Transfer Service (BITS) Peer-Caching: Peer Authentication Protocol",
    ),
    "brwsa": ("MS-BRWSA", "Common Internet File System (CIFS) Browser Auxiliary Protocol"),
    "capr": ("MS-CAPR", "Central Access Policy Identifier (ID) Retrieval Protocol"),
    "ccfg": ("MC-CCFG", "Server Cluster: Configuration (ClusCfg) Protocol"),
    "cmpo": ("MS-CMPO", "MSDTC Connection Manager: OleTx Transports Protocol"),
    "cmrp": ("MS-CMRP", "Failover Cluster: Management API (ClusAPI) Protocol"),
    "com": ("MS-COM", "Component Object Model Plus (COM+) Protocol"),
    "coma": ("MS-COMA", "Component Object Model Plus (COM+) Remote Administration Protocol"),
    "comev": ("MS-COMEV", "Component Object Model Plus (COM+) Event System Protocol"),
    "comt": ("MS-COMT", "Component Object Model Plus (COM+) Tracker Service Protocol"),
    "conv": ("C706", "DCE 1.1: Remote Procedure Call"),
    "csra": ("MS-CSRA", "Certificate Services Remote Administration Protocol"),
    "csvp": ("MS-CSVP", "Failover Cluster: Setup and Validation Protocol (ClusPrep)"),
    "dcom": ("MS-DCOM", "Distributed Component Object Model (DCOM) Remote Protocol"),
    "dfsnm": ("MS-DFSNM", "Distributed File System (DFS): Namespace Management Protocol"),
    "dfsrh": ("MS-DFSRH", "DFS Replication Helper Protocol"),
    "dhcpm": ("MS-DHCPM", "Microsoft Dynamic Host Configuration Protocol (DHCP) Server Management Protocol"),
    "dltm": ("MS-DLTM", "Distributed Link Tracking: Central Manager Protocol"),
    "dltw": ("MS-DLTW", "Distributed Link Tracking: Workstation Protocol"),
    "dmrp": ("MS-DMRP", "Disk Management Remote Protocol"),
    "dnsp": ("MS-DNSP", "Domain Name Service (DNS) Server Management Protocol"),
    "drsr": ("MS-DRSR", "Directory Replication Service (DRS) Remote Protocol"),
    "dssp": ("MS-DSSP", "Directory Services Setup Remote Protocol"),
    "efsr": ("MS-EFSR", "Encrypting File System Remote (EFSRPC) Protocol"),
    "epm": ("C706", "DCE 1.1: Remote Procedure Call"),
    "even": ("MS-EVEN", "EventLog Remoting Protocol"),
    "even6": ("MS-EVEN6", "EventLog Remoting Protocol Version 6.0"),
    "fasp": ("MS-FASP", "Firewall and Advanced Security Protocol"),
    "fax": ("MS-FAX", "Fax Server and Client Remote Protocol"),
    "frs1": ("MS-FRS1", "File Replication Service Protocol"),
    "frs2": ("MS-FRS2", "Distributed File System Replication Protocol"),
    "fsrm": ("MS-FSRM", "File Server Resource Manager Protocol"),
    "fsrvp": ("MS-FSRVP", "File Server Remote VSS Protocol"),
    "gkdi": ("MS-GKDI", "Group Key Distribution Protocol"),
    "icpr": ("MS-ICPR", "ICertPassage Remote Protocol"),
    "iisa": ("MC-IISA", "Internet Information Services (IIS) Application Host COM Protocol"),
    "iiss": ("MS-IISS", "Internet Information Services (IIS) ServiceControl Protocol"),
    "imsa": ("MS-IMSA", "Internet Information Services (IIS) IMSAdminBaseW Remote Protocol"),
    "ioi": ("MS-IOI", "IManagedObject Interface Protocol"),
    "irp": ("MS-IRP", "Internet Information Services (IIS) Inetinfo Remote Protocol"),
    "lrec": ("MS-LREC", "Live Remote Event Capture (LREC) Protocol"),
    "lsad": ("MS-LSAD", "Local Security Authority (Domain Policy) Remote Protocol"),
    "lsat": ("MS-LSAT", "Local Security Authority (Translation Methods) Remote Protocol"),
    "mgmt": ("C706", "DCE 1.1: Remote Procedure Call"),
    "mimicom": ("mimikatz", "mimikatz kiwi RPC interface (not a Microsoft protocol)"),
    "mqac": ("MC-MQAC", "Message Queuing (MSMQ): ActiveX Client Protocol"),
    "mqds": ("MS-MQDS", "Message Queuing (MSMQ): Directory Service Protocol"),
    "mqmp": ("MS-MQMP", "Message Queuing (MSMQ): Queue Manager Client Protocol"),
    "mqmr": ("MS-MQMR", "Message Queuing (MSMQ): Queue Manager Management Protocol"),
    "mqqp": ("MS-MQQP", "Message Queuing (MSMQ): Queue Manager to Queue Manager Protocol"),
    "mqrr": ("MS-MQRR", "Message Queuing (MSMQ): Queue Manager Remote Read Protocol"),
    "msrp": ("MS-MSRP", "Messenger Service Remote Protocol"),
    "nrpc": ("MS-NRPC", "Netlogon Remote Protocol"),
    "nspi": ("MS-NSPI", "Name Service Provider Interface (NSPI) Protocol"),
    "oaut": ("MS-OAUT", "OLE Automation Protocol"),
    "ocspa": ("MS-OCSPA", "Microsoft OCSP Administration Protocol"),
    "oxabref": ("MS-OXABREF", "Address Book Name Service Provider Interface (NSPI) Referral Protocol"),
    "oxcrpc": ("MS-OXCRPC", "Wire Format Protocol"),
    "pan": ("MS-PAN", "Print System Asynchronous Notification Protocol"),
    "par": ("MS-PAR", "Print System Asynchronous Remote Protocol"),
    "pcq": ("MS-PCQ", "Performance Counter Query Protocol"),
    "pla": ("MS-PLA", "Performance Logs and Alerts Protocol"),
    "raa": ("MS-RAA", "Remote Authorization API Protocol"),
    "rai": ("MS-RAI", "Remote Assistance Initiation Protocol"),
    "raiw": ("MS-RAIW", "Remote Administrative Interface: WINS"),
    "rdpesc": ("MS-RDPESC", "Remote Desktop Protocol: Smart Card Virtual Channel Extension"),
    "rpcl": ("MS-RPCL", "Remote Procedure Call Location Services Extensions"),
    "rprn": ("MS-RPRN", "Print System Remote Protocol"),
    "rrasm": ("MS-RRASM", "Routing and Remote Access Server (RRAS) Management Protocol"),
    "rrp": ("MS-RRP", "Windows Remote Registry Protocol"),
    "rsmp": ("MS-RSMP", "Removable Storage Manager (RSM) Remote Protocol"),
    "rsp": ("MS-RSP", "Remote Shutdown Protocol"),
    "samr": ("MS-SAMR", "Security Account Manager (SAM) Remote Protocol (Client-to-Server)"),
    "scmp": ("MS-SCMP", "Shadow Copy Management Protocol"),
    "scmr": ("MS-SCMR", "Service Control Manager Remote Protocol"),
    "srvs": ("MS-SRVS", "Server Service Remote Protocol"),
    "ssp": ("MS-SSP", "Single Sign-On Protocol (SSOP)"),
    "swn": ("MS-SWN", "Service Witness Protocol"),
    "tpmvsc": ("MS-TPMVSC", "Trusted Platform Module (TPM) Virtual Smart Card Management Protocol"),
    "trp": ("MS-TRP", "Telephony Remote Protocol"),
    "tsch": ("MS-TSCH", "Task Scheduler Service Remoting Protocol"),
    "tsgu": ("MS-TSGU", "Terminal Services Gateway Server Protocol"),
    "tsrap": ("MS-TSRAP", "Telnet Server Remote Administration Protocol"),
    "tsts": ("MS-TSTS", "Terminal Services Terminal Server Runtime Interface Protocol"),
    "uamg": ("MS-UAMG", "Update Agent Management Protocol"),
    "urlmon": ("MS-URLMON", ""),
    "vds": ("MS-VDS", "Virtual Disk Service (VDS) Protocol"),
    "w32t": ("MS-W32T", "W32Time Remote Protocol"),
    "wcce": ("MS-WCCE", "Windows Client Certificate Enrollment Protocol"),
    "wdsc": ("MS-WDSC", "Windows Deployment Services Control Protocol"),
    "wkst": ("MS-WKST", "Workstation Service Remote Protocol"),
    "wmi": ("MS-WMI", "Windows Management Instrumentation Remote Protocol"),
    "wsrm": ("MS-WSRM", "Windows System Resource Manager (WSRM) Protocol"),
    "_lsarpc": (
        "MS-LSAD/MS-LSAT",
        "Local Security Authority (Domain Policy / Translation Methods) Remote Protocol",
    ),
}

LSARPC = "12345778-1234-abcd-ef00-0123456789ab"
WINREG = "338cd001-2244-31f1-aaaa-900038001003"

# uuid declared by two specs -> spec id of the merged file (opnums are unioned, real names win
# over placeholders such as Opnum5NotUsedOnWire / Lsar_LSA_TM_14)
MERGE: dict[str, str] = {LSARPC: "MS-LSAD/MS-LSAT", WINREG: "MS-RRP"}

# go-msrpc packages left out: duplicates of another package, or base types without an RPC stub
SKIP: set[str] = {
    "msrpc/dcom/rsmp/iunknown/v0",  # IUnknown again
    "msrpc/fax/faxobs/v4",  # obsolete-method view of the fax interface (same uuid/version)
    "msrpc/sch/itaskschedulerservice/v1",  # copy of msrpc/tsch/itaskschedulerservice
    # go-msrpc numbers these from 0, losing the IUnknown/IMSMQEvent base opnums: wrong on the wire
    "msrpc/dcom/mqac/imsmqevent2/v0",
}
SKIP_PREFIXES: tuple[str, ...] = ("msrpc/dcom/rsmp/",)  # same base-opnum defect (MS-RSMP, obsolete)

# same opnum table under a second uuid: MS-EFSR section 2.1 binds efsrpc on two endpoints
EXTRA_UUIDS: dict[str, tuple[str, str]] = {
    "c681d488-d850-11d0-8c52-00c04fd90f7e": ("df1941c5-fe89-4e79-bf10-463657acf44d", "efsr"),
}

# uuid -> (short name, long name); empty long name = derived from the spec title
OVERRIDES: dict[str, tuple[str, str]] = {
    "e1af8308-5d1f-11c9-91a4-08002b14a0fa": ("epm", "DCE/RPC Endpoint Mapper"),
    "afa8bd80-7d8a-11c9-bef4-08002b102989": ("mgmt", "DCE/RPC Remote Management Interface"),
    "333a2276-0000-0000-0d00-00809c000000": ("conv", "DCE/RPC Conversation Manager (ncadg callbacks)"),
    "4a967f14-3000-0000-0d00-012882000000": ("convc", "DCE/RPC Conversation Manager (client callback)"),
    "12345778-1234-abcd-ef00-0123456789ac": ("samr", "Security Account Manager Remote Protocol"),
    LSARPC: ("lsarpc", "Local Security Authority Remote Protocol (Domain Policy and Translation Methods)"),
    "12345678-1234-abcd-ef00-01234567cffb": ("netlogon", "Netlogon Remote Protocol"),
    "e3514235-4b06-11d1-ab04-00c04fc2dcd2": ("drsuapi", "Directory Replication Service Remote Protocol"),
    "7c44d7d4-31d5-424c-bd5e-2b3e1f323d22": ("dsaop", ""),
    "3919286a-b10c-11d0-9ba8-00c04fd92ef5": ("dssetup", "Directory Services Setup Remote Protocol"),
    "4b324fc8-1670-01d3-1278-5a47bf6ee188": ("srvsvc", "Server Service Remote Protocol"),
    "6bffd098-a112-3610-9833-46c3f87e345a": ("wkssvc", "Workstation Service Remote Protocol"),
    WINREG: ("winreg", "Windows Remote Registry Protocol (with MS-RSP shutdown methods)"),
    "367abb81-9844-35f1-ad32-98f038001003": ("svcctl", "Service Control Manager Remote Protocol"),
    "1ff70682-0a51-30e8-076d-740be8cee98b": ("atsvc", "Task Scheduler Service Remoting Protocol: ATSvc"),
    "378e52b0-c0a9-11cf-822d-00aa0051e40f": ("sasec", "Task Scheduler Service Remoting Protocol: SASec"),
    "86d35949-83c9-4044-b424-db363231fd0c": (
        "itaskschedulerservice",
        "Task Scheduler Service Remoting Protocol: ITaskSchedulerService",
    ),
    "12345678-1234-abcd-ef00-0123456789ab": ("spoolss", "Print System Remote Protocol (winspool)"),
    "76f03f96-cdfd-44fc-a22c-64950a001209": (
        "par",
        "Print System Asynchronous Remote Protocol: IRemoteWinspool",
    ),
    "c681d488-d850-11d0-8c52-00c04fd90f7e": (
        "efsr_lsarpc",
        "Encrypting File System Remote Protocol (lsarpc endpoint)",
    ),
    "df1941c5-fe89-4e79-bf10-463657acf44d": (
        "efsr",
        "Encrypting File System Remote Protocol (efsrpc endpoint)",
    ),
    "4fc742e0-4a10-11cf-8273-00aa004ae673": ("dfsnm", "DFS Namespace Management Protocol (netdfs)"),
    "a8e0653c-2744-4389-a61d-7373df8b2292": ("fsrvp", "File Server Remote VSS Protocol: FileServerVssAgent"),
    "82273fdc-e32a-18c3-3f78-827929dc23ea": ("eventlog", "EventLog Remoting Protocol"),
    "f6beaff7-1e19-4fbb-9f8f-b89e2018337c": (
        "even6",
        "EventLog Remoting Protocol Version 6.0: IEventService",
    ),
    "3dde7c30-165d-11d1-ab8f-00805f14db40": ("bkrp", "BackupKey Remote Protocol"),
    "50abc2a4-574d-40b3-9d66-ee4fd5fba076": ("dnsserver", "DNS Server Management Protocol: DnsServer"),
    "91ae6020-9e3c-11cf-8d7c-00aa00c091be": ("icpr", "ICertPassage Remote Protocol"),
    "6bffd098-a112-3610-9833-012892020162": ("browser", "CIFS Browser Auxiliary Protocol"),
    "f5cc5a18-4264-101a-8c59-08002b2f8426": (
        "nspi",
        "Name Service Provider Interface (Exchange address book)",
    ),
    "a4f1db00-ca47-1067-b31f-00dd010662da": ("emsmdb", "Exchange MAPI Wire Format Protocol: EMSMDB"),
    "5261574a-4572-206e-b268-6b199213b4e4": (
        "asyncemsmdb",
        "Exchange MAPI Wire Format Protocol: AsyncEMSMDB",
    ),
    "1544f5e0-613c-11d1-93df-00c04fd7bd09": ("rfri", "Exchange NSPI Referral Protocol: RFRI"),
    "8fb6d884-2388-11d0-8c35-00c04fda2795": ("w32time", "W32Time Remote Protocol"),
    "ccd8c074-d0e5-4a40-92b4-d074faa6ba28": ("witness", "Service Witness Protocol"),
    "894de0c0-0d55-11d3-a322-00c04fa321a1": ("initshutdown", "Remote Shutdown Protocol: InitShutdown"),
    "d95afe70-a6d5-4259-822e-2c84da1ddb0d": ("windowsshutdown", "Remote Shutdown Protocol: WindowsShutdown"),
    "17fc11e9-c258-4b8d-8d07-2f4125156244": ("mimicom", "mimikatz kiwi RPC interface (MimiCom)"),
}
