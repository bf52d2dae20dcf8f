# Roles are Django groups (see roles.py); this module makes Django send post_migrate to this app.
