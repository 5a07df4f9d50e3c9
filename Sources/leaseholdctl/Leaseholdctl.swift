import ArgumentParser

@main
struct leaseholdctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "leaseholdctl",
        abstract: "Inspect and operate a Leasehold server.",
        discussion: """
            Connection settings come from flags, then LEASEHOLD_ENDPOINT, LEASEHOLD_CERT, LEASEHOLD_KEY and \
            LEASEHOLD_CA, then the development certificates of ./leasehold-data (--data-dir). Exit codes: 0 \
            success, 1 local failure, 3 `check` found violations, 10+N the server's error code N, 64 usage.
            """,
        subcommands: [
            Status.self, ClusterCommand.self, Busy.self, Free.self, Pins.self, Layouts.self, Sessions.self, Targets.self, Inodes.self, Inode.self, Check.self, Watch.self,
            Snapshot.self, Evict.self, Target.self, Quarantine.self, Release.self, Allocate.self, Pin.self, Unpin.self, Truncate.self,
            Punch.self, Layout.self, Certs.self,
        ]
    )
}
