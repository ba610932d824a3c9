Feature: A command line that cannot lose a trial or give away a secret
  Trial staff run trialkit from a terminal and from scripts. A slip of the keyboard,
  a script that pipes "n" into a command, or a trainer's demo must never destroy a live
  trial; a database password must never be shown; and a script must be able to read
  every answer, a refusal included, as JSON.

  Rule: A database password is never shown and never put on a command line

    Scenario: The admin's database password stays out of the output
      Given a PostgreSQL database reached through a URL that carries a password
      When the admin creates the trial there from the command line
      Then the output names the database as "postgresql+psycopg://USER@HOST/DB"
      And the password appears nowhere in what the command printed

  Rule: The demo never costs anyone a trial

    Scenario Outline: A trainer's demo command refuses a database that holds the live trial
      Given the live KetHead trial in the database "trial.db"
      When a trainer runs "<command>" with that database
      Then the command is refused, naming the live trial "KETHEAD"
      And the demo password is not printed
      And the live trial is exactly as it was

      Examples:
        | command               |
        | trialkit demo --fresh |
        | trialkit demo         |

  Rule: A script can read every answer as JSON, a refusal included

    Scenario Outline: A script is told in JSON why its command failed
      Given the live KetHead trial in the database "trial.db"
      When a script runs "<command>" as the admin
      Then it reads one JSON document saying "<error>" with exit code <code>
      And a person reading the terminal sees the same message as text

      Examples:
        | command                                             | error                            | code |
        | trialkit --json export everything --out x.csv        | unknown export 'everything'      | 2    |
        | trialkit --json queue                                | lacks the permission             | 1    |
        | trialkit --json seal --per-stratum many              | Invalid value for '--per-stratum' | 2    |

  Rule: What cannot be undone is confirmed first

    Scenario: An investigator is asked before locking, and a script must say --yes
      Given the live KetHead trial in the database "trial.db"
      And the investigator "ivan" on its team
      When "ivan" pipes "n" into "trialkit lock"
      Then the command is refused because it cannot be undone without --yes
      And the database is not locked and nothing at all was recorded
      When "ivan" answers "n" at the terminal to "trialkit lock"
      Then he was asked "Lock KETHEAD now?"
      And the database is not locked and nothing at all was recorded
      When "ivan" runs "trialkit lock --yes"
      Then the database is locked

  Rule: A training trial's clock only moves forward

    Scenario: A trainer cannot turn a training trial's clock back
      Given a training trial whose last audit event happened at "2027-01-05T10:00:00Z"
      When the admin lists the users with TRIALKIT_CLOCK set to "2027-01-05T09:00:00Z"
      Then the command is refused because the time is earlier than the last audit event
      And nothing at all was recorded
