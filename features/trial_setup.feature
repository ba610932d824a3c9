Feature: Setting up the KetHead trial and signing in
  The trial admin creates the trial from the protocol file the ethics board
  approved; coordinators at the sites then sign in to do their work. The audit
  trail keeps every step, and a monitor can check that nobody has changed it.

  Rule: The admin creates the trial from its approved protocol file

    Scenario: The admin creates the KetHead trial from its protocol file
      Given an empty trial database
      When the admin "alice" creates the trial from the protocol file "protocols/kethead.toml"
      Then the trial "KETHEAD", protocol version "1.0", is set up with the sites "TWH, SHS"
      And the trial keeps the fingerprint of the protocol file it was created from
      And "alice" can sign in as the trial admin
      And the audit trail shows the trial was created from "protocols/kethead.toml"
      And the audit trail shows "alice" created the trial and her own account
      And the audit trail verifies

    Scenario Outline: A protocol file with a mistake is refused and nothing is created
      Given an empty trial database
      And a draft protocol file "kethead-draft.toml" in which <mistake>
      When the admin "alice" creates the trial from the protocol file "kethead-draft.toml"
      Then the admin is told the input is wrong, in one line and without a traceback
      And the message names the file "kethead-draft.toml", the field "<field>" and says "<what is wrong>"
      And the trial database is left empty

      Examples:
        | mistake                                  | field                     | what is wrong                     |
        | the Sinai site's recruitment target is 0 | sites[1].target           | should be greater than 0 (got 0)  |
        | the block sizes are 4 and 5              | allocation.block_sizes[1] | 5 is not a multiple of 2          |
        | the trial has no title                   | trial.title               | missing                           |
        | no outcome window is marked primary      | diary.windows             | 0 primary windows                 |

  Rule: Only the right password opens an account, and guessing is slowed, never locked out

    Background:
      Given the KetHead trial has been created by the admin "alice"
      And the admin has added the coordinator "cora" at the site "TWH"

    Scenario: A coordinator signs in
      When "cora" signs in with her password
      Then she is signed in as a coordinator of the site "TWH" only
      And the audit trail shows that "cora" signed in
      And the audit trail verifies

    Scenario: Wrong passwords in a row slow her down but never lock her out
      When "cora" signs in with a wrong password 4 times
      Then each of those attempts is refused with "wrong user name or password"
      And "cora" is told to wait 1 s even with her right password
      And the admin sees the account of "cora" as waiting
      And the audit trail verifies
      When 1 second has passed
      Then "cora" can sign in with her right password again

    Scenario: A name that is no account meets the same delay
      When "nobody" signs in with a wrong password 4 times
      Then each of those attempts is refused with "wrong user name or password"
      And "nobody" is told to wait 1 s even with her right password

  Rule: Any change made to the audit trail behind trialkit's back is detected

    Background:
      Given the KetHead trial has been created by the admin "alice"
      And the admin has added the coordinator "cora" at the site "TWH"
      And "cora" has signed in
      And checking the audit trail from the command line says it is OK

    Scenario: The database itself refuses an ordinary edit of the audit trail
      When someone tries to edit the sign-in of "cora" in the audit trail directly in the database
      Then the database refuses the edit
      And checking the audit trail from the command line says it is OK

    Scenario: Someone edits an audit event directly in the database
      When someone gets past the database's guard and makes the sign-in of "cora" look like "alice" signed in
      Then checking the audit trail from the command line is refused
      And the message names that event and says "its content was changed after it was written"

    Scenario: Someone deletes an audit event directly in the database
      When someone gets past the database's guard and deletes the event that records "cora" being added
      Then checking the audit trail from the command line is refused
      And the message names that event and says "missing"
