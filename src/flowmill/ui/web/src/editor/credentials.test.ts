import { describe, expect, it } from "vitest";
import { credentialOptions, credentialTypesOf } from "./credentials";

const list = [
  { id: "c1", name: "billing-api", type: "bearer" },
  { id: "c2", name: "mail", type: "smtp" },
  { id: "c3", name: "gmail", type: "oauth2" },
  { id: "c4", name: "backup-mail", type: "smtp" },
];

describe("credentialOptions", () => {
  it("lists only the credentials of the types the field takes", () => {
    const o = credentialOptions(list, ["smtp"], undefined);
    expect(o.shown.map((c) => c.name)).toEqual(["mail", "backup-mail"]);
    expect(o.hidden).toBe(2);
    expect(o.mismatch).toBeNull();
    expect(credentialOptions(list, ["bearer", "oauth2"], "gmail").shown.map((c) => c.name)).toEqual(["billing-api", "gmail"]);
  });

  it("lists them all when the field names no type", () => {
    expect(credentialOptions(list, null, "mail")).toEqual({ shown: list, hidden: 0, mismatch: null });
  });

  it("keeps a chosen credential of another type in the list, and says so", () => {
    const o = credentialOptions(list, ["smtp"], "billing-api");
    expect(o.shown.map((c) => c.name)).toEqual(["billing-api", "mail", "backup-mail"]);
    expect(o.mismatch).toEqual(list[0]);
    expect(o.hidden).toBe(1);
    expect(credentialOptions(list, ["smtp"], "c1").mismatch).toEqual(list[0]); // by id too
  });

  it("has no mismatch for a template or an unknown name", () => {
    expect(credentialOptions(list, ["smtp"], "{{ trigger.data.account }}").mismatch).toBeNull();
    expect(credentialOptions(list, ["smtp"], "deleted-since").mismatch).toBeNull();
  });
});

describe("credentialTypesOf", () => {
  it("reads x-credential-types, ignoring what is not a list of names", () => {
    expect(credentialTypesOf({ type: "string", "x-credential-types": ["smtp"] })).toEqual(["smtp"]);
    expect(credentialTypesOf({ type: "string" })).toBeNull();
    expect(credentialTypesOf({ "x-credential-types": [] })).toBeNull();
    expect(credentialTypesOf({ "x-credential-types": "smtp" })).toBeNull();
  });
});
