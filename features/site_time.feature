Feature: Dates and times are the site's own
  Both KetHead hospitals are in Toronto. As a coordinator I enter diary days, consents and
  infusions by the date on the calendar on my wall, and as a pharmacist I write the time on
  my clock on a label: late in the evening it is still today here, although it is already
  tomorrow in UTC. Every date and time I am shown carries its zone (EST in winter, EDT in
  summer) so nobody has to guess; the audit trail keeps UTC.

  Background:
    Given the KetHead trial is running at "TWH" with sealed allocation lists
    And I am "tess", a coordinator at "TWH"
    And I screened "TWH-001" on 2 March 2026, who consented the same day

  Scenario: A diary day entered at 8 in the evening belongs to that evening's date
    Given the clock in Toronto says 20:00 on 9 March 2026 (2026-03-10 00:00 UTC)
    When I enter for "TWH-001" on 9 March: no headache
    Then the diary of "TWH-001" for 9 March is recorded at "2026-03-09 20:00 EDT"
    When I enter for "TWH-001" on 10 March: no headache
    Then I am told the input is wrong: "TWH-001: date 2026-03-10 is in the future (today is 2026-03-09)"

  Scenario: Consent signed late in the evening is dated today, not tomorrow
    Given the clock in Toronto says 18:30 on 2 March 2026 (2026-03-02 23:30 UTC)
    And I have screened "TWH-002"
    And the clock in Toronto says 23:30 on 2 March 2026 (2026-03-03 04:30 UTC)
    When I record the consent of "TWH-002" dated 3 March 2026
    Then I am told the input is wrong: "consent date 2026-03-03 is in the future (today is 2026-03-02)"
    When I record the consent of "TWH-002" dated 2 March 2026
    Then "TWH-002" has consented on 2026-03-02

  Scenario Outline: The pharmacy's label shows the time in Toronto
    Given "TWH-001" has been randomized
    And the clock in Toronto says <local> (<utc> UTC)
    When the pharmacist "phil" records the preparation of "TWH-001", checked by "pia", and prints its labels
    Then both labels say "Prepared <prepared>" and "Expires <expires>"

    Examples:
      | local                     | utc              | prepared             | expires              |
      | 03:24 on 10 June 2026     | 2026-06-10 07:24 | 2026-06-10 03:24 EDT | 2026-06-11 03:24 EDT |
      | 18:30 on 20 November 2026 | 2026-11-20 23:30 | 2026-11-20 18:30 EST | 2026-11-21 18:30 EST |
      | 08:00 on 31 October 2026  | 2026-10-31 12:00 | 2026-10-31 08:00 EDT | 2026-11-01 07:00 EST |
