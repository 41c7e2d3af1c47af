/* parse_cmd.h — `cascade parse FILE...`: runs the SIP parser over message
 * files and prints one verdict per file (a tool for checking captures and
 * the RFC 4475 torture messages by hand). */
#ifndef CASCADE_APP_PARSE_CMD_H
#define CASCADE_APP_PARSE_CMD_H

/* argv[0] is "parse", the files follow. Prints "OK <method-or-status>
 * <call-id>" or "BAD <reason>" per file on stdout; returns the exit code:
 * 0 when every file parsed, 1 otherwise (2 on usage errors). */
int parse_cmd_main(int argc, char **argv);

#endif
