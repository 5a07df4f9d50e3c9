import LeaseholdCore
import LeaseholdMessages
import Testing

@testable import LeaseholdCluster

/// The settings every node of a cluster serves with, as the `volume` key holds them.
@Suite("Cluster settings")
struct ClusterSettingsTests {
    static func settings(eventHistory: Int) -> ClusterSettings {
        var coordinator = CoordinatorConfiguration()
        coordinator.eventHistory = eventHistory
        return ClusterSettings(coordinator: coordinator, admins: ["admin"], targets: [])
    }

    @Test("the event history round-trips; a volume written before the setting existed reads as the default; out of range is refused")
    func eventHistory() throws {
        let kept = Self.settings(eventHistory: 77)
        #expect(try ClusterSettings(message: kept.message).eventHistory == 77)
        #expect(kept.applied(to: CoordinatorConfiguration(), geometry: .default).eventHistory == 77)

        var old = kept.message
        old.clearEventHistory()
        #expect(try ClusterSettings(message: old).eventHistory == CoordinatorConfiguration().eventHistory)
        #expect(try ClusterSettings(message: Self.settings(eventHistory: 0).message).eventHistory == 0, "none kept is a setting of its own")

        var huge = kept.message
        huge.eventHistory = UInt64(CoordinatorConfiguration.maxEventHistory) + 1
        #expect(throws: ClusterVolumeError.self) { try ClusterSettings(message: huge) }
    }
}
