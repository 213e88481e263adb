import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/env.js";
import { type ProxyReplicaRow, RoutingTable } from "../../src/proxy/table.js";
import { replicaAllowList } from "../../src/render/address.js";
import { checkAddress } from "../../src/render/validate.js";

// Issue 10 item 7: what a replica address may be. Each refused case names the words its reason must contain.

describe("replica addresses", () => {
  it.each([
    ["10.0.0.1"],
    ["127.0.0.1"],
    ["192.168.1.20"],
    ["172.16.0.5"],
    ["100.64.0.1"], // CGNAT: replicas on some overlay networks
    ["8.8.8.8"],
    ["::1"],
    ["fd00::1"],
    ["fd00:ec2::253"], // near the AWS metadata address, but not it
    ["2001:db8::1"],
    ["::ffff:10.0.0.1"],
    ["64:ff9b::a00:1"], // NAT64 of 10.0.0.1
    ["web-1.internal"],
    ["svc"],
    ["my_svc.local"],
    ["localhost"],
    ["metadata.example.com"],
    ["0x.example.com"], // a hex-looking first label is fine; only the last one makes a numeric alias
    ["db1.example.io"],
    ["web1"],
    ["169.a1"], // a numeric first label does not make a name an address
    ["0.svc"],
  ])("accepts %s", (address) => {
    expect(checkAddress(address)).toBeUndefined();
  });

  it.each([
    ["169.254.169.254", "cloud metadata"],
    ["169.254.170.2", "cloud metadata"],
    ["100.100.100.200", "cloud metadata"],
    ["fd00:ec2::254", "cloud metadata"],
    ["FD00:EC2:0:0:0:0:0:254", "cloud metadata"],
    ["::ffff:169.254.169.254", "cloud metadata"],
    ["::ffff:a9fe:a9fe", "cloud metadata"],
    ["64:ff9b::169.254.169.254", "cloud metadata"],
    ["metadata.google.internal", "cloud metadata host name"],
    ["METADATA.google.internal", "cloud metadata host name"],
    ["metadata", "cloud metadata host name"],
    ["metadata.goog", "cloud metadata host name"],
    ["instance-data", "cloud metadata host name"],
    ["instance-data.ec2.internal", "cloud metadata host name"],
    ["169.254.1.1", "link-local"],
    ["fe80::1", "link-local"],
    ["febf::1", "link-local"],
    ["::ffff:169.254.0.1", "link-local"],
    ["0.0.0.0", "unspecified"],
    ["0.1.2.3", "unspecified"],
    ["::", "unspecified"],
    ["0:0:0:0:0:0:0:0", "unspecified"],
    ["::ffff:0.0.0.0", "unspecified"],
    ["224.0.0.1", "multicast"],
    ["239.255.255.250", "multicast"],
    ["ff02::1", "multicast"],
    ["::ffff:224.0.0.251", "multicast"],
    ["255.255.255.255", "broadcast"],
    ["2130706433", "numeric host alias"],
    ["0x7f000001", "numeric host alias"],
    ["0X7F000001", "numeric host alias"],
    ["127.1", "numeric host alias"],
    ["0", "numeric host alias"],
    ["017700000001", "numeric host alias"],
    ["127.0.0.01", "numeric host alias"],
    ["010.0.0.1", "numeric host alias"],
    ["1.2.3.4.5", "numeric host alias"],
    ["a.0x10", "numeric host alias"],
    ["fe80::1%eth0", "zone id"],
    ["::1%lo", "zone id"],
    ["[::1]", "IPv4 or IPv6 address or a DNS name"],
    ["10.0.0.1:80", "IPv4 or IPv6 address or a DNS name"],
    ["", "IPv4 or IPv6 address or a DNS name"],
  ])("refuses %s (%s)", (address, reason) => {
    expect(checkAddress(address)).toContain(reason);
  });

  it("says how an operator can allow a refused address", () => {
    expect(checkAddress("169.254.10.5")).toBe(
      "169.254.10.5 is a link-local address (169.254.0.0/16); replicas may not use it unless REPLICA_ALLOWED_CIDRS covers it",
    );
  });

  it("accepts refused addresses that REPLICA_ALLOWED_CIDRS covers, and only those", () => {
    const allowed = replicaAllowList(["169.254.10.0/24", "fe80::/64", "169.254.169.254"]);
    expect(checkAddress("169.254.10.5", allowed)).toBeUndefined();
    expect(checkAddress("::ffff:169.254.10.5", allowed)).toBeUndefined();
    expect(checkAddress("fe80::5", allowed)).toBeUndefined();
    expect(checkAddress("169.254.169.254", allowed)).toBeUndefined();
    expect(checkAddress("169.254.11.5", allowed)).toContain("link-local");
    expect(checkAddress("fe80:0:0:1::5", allowed)).toContain("link-local");
    // The allow-list holds addresses: it never turns a numeric alias or a metadata name into a valid replica.
    expect(checkAddress("2852039166", replicaAllowList(["0.0.0.0/0"]))).toContain("numeric host alias");
    expect(checkAddress("metadata.google.internal", replicaAllowList(["0.0.0.0/0", "::/0"]))).toContain(
      "REPLICA_ALLOWED_CIDRS allows addresses, not names",
    );
  });

  it("builds no allow-list from an empty REPLICA_ALLOWED_CIDRS", () => {
    expect(replicaAllowList([])).toBeUndefined();
  });

  it("refuses to start with a REPLICA_ALLOWED_CIDRS entry that is not a CIDR or address", () => {
    expect(loadConfig({ REPLICA_ALLOWED_CIDRS: " 169.254.10.0/24 , fe80::/64 " }).REPLICA_ALLOWED_CIDRS).toEqual([
      "169.254.10.0/24",
      "fe80::/64",
    ]);
    expect(() => loadConfig({ REPLICA_ALLOWED_CIDRS: "169.254.0.0/33" })).toThrow(/REPLICA_ALLOWED_CIDRS/);
    expect(() => loadConfig({ REPLICA_ALLOWED_CIDRS: "metadata.google.internal" })).toThrow(/REPLICA_ALLOWED_CIDRS/);
  });
});

describe("the fallback proxy's table", () => {
  const replica = (id: string, address: string): ProxyReplicaRow => ({
    id,
    deploymentId: "dep_a",
    address,
    port: 8080,
    status: "running",
    healthStatus: "healthy",
    cpuUsage: null,
    cpuUpdatedAt: null,
  });
  const snapshot = {
    routes: [
      {
        id: "rt_a",
        deploymentId: "dep_a",
        domain: "a.example.com",
        pathPrefix: "/",
        targetPort: 8080,
        protocol: "http" as const,
        isPrimary: true,
        healthIntervalSeconds: null,
      },
    ],
    replicas: [
      replica("ok", "10.0.0.1"),
      replica("meta", "169.254.169.254"),
      replica("alias", "2130706433"),
      replica("ll", "169.254.10.5"),
    ],
  };

  it("never forwards to a refused replica address written past the API, unless REPLICA_ALLOWED_CIDRS covers it", () => {
    const strict = RoutingTable.build(snapshot, { defaultIntervalSeconds: 30 });
    expect([...strict.origins]).toEqual(["http://10.0.0.1:8080"]);
    const allowing = RoutingTable.build(snapshot, {
      defaultIntervalSeconds: 30,
      replicaAllowList: replicaAllowList(["169.254.10.0/24"]),
    });
    expect([...allowing.origins].sort()).toEqual(["http://10.0.0.1:8080", "http://169.254.10.5:8080"]);
  });
});
