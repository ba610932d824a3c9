Feature: Signed audit events
  As the sponsor's quality auditor I must be able to rely on each entry of the audit trail:
  that the person it names made it, and that nobody changed it afterwards, not even someone
  who holds the database and recomputes every hash. Every person signs each entry they cause
  with a key that only their own password unlocks; when I verify the trail, trialkit checks
  every signature against the key the trail itself recorded for that person.

  Background:
    Given a trial where coordinator "cora" imported a paper diary recording a severe headache

  Scenario: Every entry is signed by the person it names
    Then every entry is signed by its author, apart from refused sign-ins
    And the trail verifies

  Scenario: An edited diary import is found even with every hash recomputed
    When someone with write access to the database changes that day to no headache in the diary table and in the import's entry, and recomputes every hash after it
    Then verifying the trail fails at the import's entry: "its signature does not match cora's key"

  Scenario: An unblinding nobody performed is found
    When someone with write access to the database appends a correctly hashed entry "ivan participant.unblind" signed with a key of their own
    Then verifying the trail fails at that entry: "does not match ivan's key"

  Scenario: Putting one's own key in a person's account does not help
    When someone with write access to the database puts their own key in ivan's account and appends an entry "ivan participant.unblind" signed with it
    Then verifying the trail fails at that entry: "does not match ivan's key"
