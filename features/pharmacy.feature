Feature: Preparing the study infusion in the research pharmacy
  As a research pharmacist I am the one person at the site who knows the treatment. I
  open the sealed envelope of a randomized participant with my own password, prepare the
  bolus syringe and the infusion bag for the participant's weight, have a second
  pharmacist check them, record the product lots, and label both so that nobody on the
  ward can tell ketamine from placebo.

  Background:
    Given the KetHead trial is running with the pharmacists "phil" and "pia"
    And these participants have been randomized at "TWH":
      | participant | weight | treatment |
      | TWH-001     | 70     | ketamine  |
      | TWH-002     | 70     | placebo   |
      | TWH-003     | 68.3   | ketamine  |
      | TWH-004     | 70     | placebo   |
    And I am the pharmacist "phil"

  Rule: I see who is waiting, and only I see the treatment

    Scenario: My queue shows who is waiting, oldest first, without the treatment
      Then my dispense queue at "TWH" lists "TWH-001, TWH-002, TWH-003, TWH-004"
      And the queue shows each participant's weight and nothing about the treatment

    Scenario Outline: I open an envelope and am told how to prepare the treatment
      When I open the envelope of "<participant>" with my password
      Then I am shown that "<participant>" is to receive <treatment>
      And I am told to draw up a bolus syringe of <bolus> and an infusion bag of <bag> to run at <rate> for 6 h
      And the audit trail shows that I opened the envelope of "<participant>", without the treatment

      Examples:
        | participant | treatment | bolus  | bag      | rate      |
        | TWH-001     | ketamine  | 7.0 mL | 210.0 mL | 35.0 mL/h |
        | TWH-002     | placebo   | 7.0 mL | 210.0 mL | 35.0 mL/h |
        | TWH-003     | ketamine  | 6.8 mL | 205.2 mL | 34.2 mL/h |

  Rule: What I prepare is recorded, checked by a second pharmacist

    Scenario: I record a preparation my colleague has checked
      When I record the preparation of "TWH-001" with the lots "bolus=K2403-117, infusion=K2403-118", checked by "pia"
      Then the preparation of "TWH-001" is recorded as prepared by "phil" and checked by "pia"
      And it expires 24 hours after it was prepared
      And the coordinator sees "TWH-001" as "dispensed"
      And my dispense queue at "TWH" lists "TWH-002, TWH-003, TWH-004"
      And "pia" can read the lots "K2403-117" and "K2403-118" of "TWH-001" again

    Scenario: My colleague signs her check with her own password
      When "pia" checks my preparation of "TWH-001" with the lots "bolus=K2403-117, infusion=K2403-118" and signs with her password
      Then the preparation of "TWH-001" is recorded as prepared by "phil" and checked by "pia"
      And the record says "pia" signed the check when it was recorded

    Scenario: A check signed with a wrong password records nothing
      When "pia" checks my preparation of "TWH-001" with the lots "bolus=K2403-117, infusion=K2403-118" and signs with the password "not-her-password"
      Then I am refused: "the check by pia is not signed: wrong password"
      And nothing has been recorded but a failed sign-in of "pia", which counts towards locking her account

    Scenario: The checker must differ from the preparer
      When I record the preparation of "TWH-001" with the lots "bolus=K2403-117, infusion=K2403-118", checked by "phil"
      Then I am refused: "phil prepared it, so cannot also check it"
      And no envelope has been opened and nothing has been recorded but the refusal

    Scenario Outline: A mistake is refused before any envelope is opened
      When I record the preparation of "<participant>" with the lots "<lots>", checked by "<checker>"
      Then I am <told>: "<message>"
      And no envelope has been opened and <recorded>

      Examples:
        | participant | lots                                | checker | told                    | message                                 | recorded                                  |
        | TWH-001     | bolus=K, infusion=K2403-118         | pia     | told the input is wrong | lot number 'K' for bolus                | nothing has been recorded                 |
        | TWH-001     | bolus=K2403 117, infusion=K2403-118 | pia     | told the input is wrong | lot number 'K2403 117' for bolus        | nothing has been recorded                 |
        | TWH-001     | bolus=K2403-117                     | pia     | told the input is wrong | no lot number for infusion              | nothing has been recorded                 |
        | TWH-001     | bolus=K2403-117, infusion=K2403-118 | cora    | refused                 | cora is a coordinator, not a pharmacist | nothing has been recorded but the refusal |
        | TWH-006     | bolus=K2403-117, infusion=K2403-118 | pia     | refused                 | TWH-006 has not been randomized         | nothing has been recorded but the refusal |

    Scenario: A participant already dispensed gets a reprint, not a second opening
      Given I have recorded the preparation of "TWH-001", checked by "pia"
      When I open the envelope of "TWH-001" with my password
      Then I am refused: "TWH-001 was already dispensed"
      And no envelope has been opened and nothing has been recorded but the refusal
      When I print the labels of "TWH-001" again
      Then the labels say "REPRINT 1"
      And the audit trail shows that I reprinted the labels of "TWH-001"

    Scenario: A wrong password opens nothing
      When I open the envelope of "TWH-001" with the password "not-my-password"
      Then I am refused: "wrong password for the custodian key"
      And no envelope has been opened and nothing has been recorded but the refusal

  Rule: A preparation that expired before the infusion is prepared again

    Scenario: I prepare again from the same envelope, and the old preparation and labels are void
      Given I have recorded the preparation of "TWH-001", checked by "pia"
      When the preparation of "TWH-001" has expired
      Then my dispense queue at "TWH" lists "TWH-001, TWH-002, TWH-003, TWH-004"
      And the queue says the preparation of "TWH-001" expired and is to be prepared again
      When I prepare "TWH-001" again because "expired before the infusion" with the lots "bolus=K2403-217, infusion=K2403-218", checked by "pia"
      Then the first preparation of "TWH-001" is void, by me, because "expired before the infusion"
      And a second preparation of "TWH-001" is recorded from the same envelope, checked by "pia"
      And its labels say "PREP 2: EARLIER VOID"
      And my dispense queue at "TWH" lists "TWH-002, TWH-003, TWH-004"
      And the audit trail shows the void and the new preparation with my reason, without the treatment

    Scenario: Preparing again needs a reason
      Given I have recorded the preparation of "TWH-001", checked by "pia"
      When the preparation of "TWH-001" has expired
      And I prepare "TWH-001" again without saying why
      Then I am told the input is wrong: "say why the preparation is made again"
      And no envelope has been opened and nothing has been recorded

    Scenario: An expired preparation is not infused, even later on the day it expired
      Given I have recorded the preparation of "TWH-001", checked by "pia"
      When the coordinator records the infusion of "TWH-001" four hours after its preparation expired, on the same day
      Then they are refused: "TWH-001's prepared infusion expired at"
      And "TWH-001" is not infused

  Rule: Ketamine and placebo look the same on the ward

    Scenario: Preparing ketamine and placebo gives identical labels
      When I record the preparation of "TWH-001" with the lots "bolus=K2403-117, infusion=K2403-118", checked by "pia", and print its labels
      And I record the preparation of "TWH-002" with the lots "bolus=S2311-042, infusion=S2311-043", checked by "pia", and print its labels
      Then each of them has 2 labels: a "Bolus syringe" and an "Infusion bag"
      And every label says "KETAMINE OR PLACEBO" and names neither a product nor a lot
      And the labels of "TWH-001" and "TWH-002" differ only in the participants' own identifiers and times

  Rule: A label code is read aloud and typed, so it is letters and digits only

    Scenario: Label codes have no symbols and a mistyped character is caught
      Then the label codes of "TWH-001, TWH-002, TWH-003, TWH-004" are four letters or digits, a dash, four more, a dash and a check letter or digit
      And any of those label codes typed with one character wrong is refused or matches nobody
      And a label code printed before this change, "0000-0010-*", is still accepted as typed

  Rule: Nobody but a pharmacist opens an envelope

    Scenario Outline: Someone who is not a pharmacist cannot open an envelope
      When "<who>" tries to open the envelope of "TWH-001"
      Then they are refused: "<who> (<role>) lacks the permission to open allocation envelopes"
      And the audit trail shows that "<who>" was refused
      And no envelope has been opened

      Examples:
        | who   | role         |
        | cora  | coordinator  |
        | mona  | monitor      |
        | alice | admin        |
        | ivan  | investigator |
