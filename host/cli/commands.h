// commands.h: the subcommands of the `qtrain` program. Each takes argv with argv[0] the
// subcommand's name, prints errors as one `qtrain: error: ...` line, and returns the exit code.
#ifndef QTRAIN_CLI_COMMANDS_H
#define QTRAIN_CLI_COMMANDS_H

int qt_cmd_prepare(int argc, char **argv);
int qt_cmd_train(int argc, char **argv);
int qt_cmd_eval(int argc, char **argv);
int qt_cmd_sample(int argc, char **argv);
int qt_cmd_bench(int argc, char **argv);
int qt_cmd_study(int argc, char **argv);
int qt_cmd_export(int argc, char **argv);
int qt_cmd_import(int argc, char **argv);

#endif
